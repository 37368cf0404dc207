from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0015_link_codes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Contract',
            name='owner_bears_nearby_fees',
            field=fields.BooleanField(default=False, description="the owner pays the nearby-consumption (就近消纳) fees — capacity, system operation, wire loss — on the plant's bill while NearbyConsumptionTerms are in force"),
        ),
    ]
