"""Readings can be flagged as suspect (energy no plant or site could make or draw), and forms say
what holds them, naming the register and its figures."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0011_repeated_trip_episodes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='ConfirmationForm',
            name='findings',
            field=fields.JSONField(default=list, description='what holds the form, naming the register and its figures', encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='Reading',
            name='flag',
            field=fields.CharField(null=True, description='why the reading is suspect: implausible_energy', max_length=32),
        ),
        ops.AddField(
            model_name='Reading',
            name='flag_detail',
            field=fields.JSONField(null=True, description='the figures behind the flag', encoder=JSON_DUMPS, decoder=loads),
        ),
    ]
