from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0003_nearby_consumption_terms')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Bill',
            name='written_off_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
